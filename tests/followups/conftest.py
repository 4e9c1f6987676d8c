from tests.fakes.pipeline import pipeline, pipeline_overrides

__all__ = ["pipeline", "pipeline_overrides"]
