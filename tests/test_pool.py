import pytest

from pipeline.pool import run_tolerant
from tests.tasks import failed, square_or_die


@pytest.mark.parametrize("workers", [1, 2])
def test_a_crash_or_exception_fails_only_its_own_task(workers):
    results = list(run_tolerant(square_or_die, range(20), workers=workers, on_failure=failed))
    assert len(results) == 20
    assert "13 failed: the worker process crashed while making this item" in results
    assert "7 failed: unexpected ValueError: seven is unlucky" in results
    assert sorted(r for r in results if isinstance(r, int)) == [i * i for i in range(20) if i not in (7, 13)]
