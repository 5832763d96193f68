from __future__ import annotations

import stasis


def test_public_api_is_pinned() -> None:
    assert sorted(stasis.__all__) == stasis.__all__
    for name in stasis.__all__:
        assert getattr(stasis, name) is not None
    assert set(stasis.__all__) >= {"Agent", "KnowledgeBase", "Message", "Reply", "StasisSettings", "build_agent"}
