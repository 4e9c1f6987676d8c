from tests.agent.conftest import _no_real_llm, catalog_session, playbook

__all__ = ["_no_real_llm", "catalog_session", "playbook"]
