from tests.fakes.pipeline import pipeline, pipeline_overrides
from tests.inbox.test_spool import outage

__all__ = ["outage", "pipeline", "pipeline_overrides"]
