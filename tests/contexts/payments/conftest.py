import pytest

from contexts.payments import providers


@pytest.fixture(autouse=True)
def _fresh_provider():
    """The fake provider remembers charges per process: start every test with a new one."""
    providers._provider.cache_clear()
    yield
    providers._provider.cache_clear()
