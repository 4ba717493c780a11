"""
Handler registration validates what it is given (issue 12): anything that is not an async callable, or an iterable
of them, is refused where it is registered with a TypeError naming it, never accepted to fail once per message.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniagents import MiniAgents

ASYNC_HOOKS = ["on_persist_message", "on_promise_resolved"]
# (a str, bytes or a mapping is iterable, but refused as a whole: never taken for a collection of handlers)
NOT_CALLABLE = st.one_of(
    st.integers(),
    st.floats(),
    st.booleans(),
    st.complex_numbers(),
    st.builds(object),
    st.text(),
    st.binary(),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def registration(hook: str, handlers: Any) -> dict[str, Any]:
    return {hook: handlers}


@pytest.mark.parametrize("hook", ASYNC_HOOKS)
@given(value=NOT_CALLABLE)
def test_a_handler_that_is_not_callable_is_refused_at_registration_naming_its_type(hook: str, value: Any) -> None:
    for given_as in (value, [value], [_async_handler, value]):
        with pytest.raises(TypeError, match=f"callable.*got {type(value).__name__}"):
            MiniAgents(**registration(hook, given_as))
    with pytest.raises(TypeError, match=f"callable.*got {type(value).__name__}"):
        getattr(MiniAgents(), hook)(value)


async def _async_handler(*args: Any) -> None: ...


@pytest.mark.parametrize("hook", ASYNC_HOOKS)
@given(name=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True))
def test_a_synchronous_handler_is_refused_at_registration_naming_it(hook: str, name: str) -> None:
    def handler(*args: Any) -> None: ...

    handler.__name__ = handler.__qualname__ = f"sync_{name}"
    with pytest.raises(TypeError, match=f"sync_{name}.*is not"):
        MiniAgents(**registration(hook, handler))
    with pytest.raises(TypeError, match=f"sync_{name}"):
        MiniAgents(**registration(hook, [handler]))
