"""Squeezer: serverless file compression (AWS Chalice, S3, SQS, DynamoDB)."""

__version__ = "0.1.0"
SERVICE_NAME = "squeezer"
