"""Deploying Squeezer: ``python -m infra.deploy --help``.

Modules: :mod:`.cli` (the commands), :mod:`.packaging` (``chalice package``
with the merge template), :mod:`.stack` (CloudFormation deploy and delete),
:mod:`.direct` (the ``chalice deploy`` path, LocalStack, event source
mappings), :mod:`.errors`.
"""
