"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.artifacts import ScratchBucket, bucket_for
from tests.support.operator_fixtures import Kube


@pytest.fixture
async def bucket(kube: Kube, namespace: str) -> AsyncIterator[ScratchBucket]:
    made = await bucket_for(kube, namespace)
    yield made
    await made.store.close()
