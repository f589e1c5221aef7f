"""The job table's names that the code and the infrastructure share (one home each).

Kept free of imports: the authorizer's cold start reads it through
``tenantstore.py`` without loading the job store.
"""

OWNER_INDEX = "by_owner"  # jobs and tenants, listed per owner (a global secondary index)
TTL_ATTRIBUTE = "expires_at"  # an item's expiry (DynamoDB's time to live), epoch seconds
