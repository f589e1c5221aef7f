"""Squeezer's infrastructure: one resource definition for AWS, LocalStack and the local stack."""
