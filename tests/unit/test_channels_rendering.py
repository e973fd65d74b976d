"""Template rendering: sandboxed, autoescaped HTML, traits of the profile."""

import pytest

from engage.v1 import template_pb2
from services.channels.rendering import (
    TemplateProblem,
    check_email_syntax,
    profile_context,
    render_email,
)


def email(**parts: str) -> template_pb2.EmailContent:
    content = template_pb2.EmailContent(subject=parts.pop("subject", "Hello"))
    for name, value in parts.items():
        setattr(content, name, value)
    return content


def ada(**traits: object) -> dict[str, object]:
    return profile_context("u1", {"first_name": "Ada", **traits}, {"plan": "pro"})


async def test_traits_and_data_render_in_every_part() -> None:
    rendered = render_email(
        email(
            subject="Hi {{ profile.traits.first_name }}",
            text_body="Your plan: {{ data.plan }}",
            html_body="<p>Hi {{ profile.traits.first_name }}</p>",
        ),
        ada(),
    )
    assert rendered.subject == "Hi Ada"
    assert rendered.text_body == "Your plan: pro"
    assert rendered.html_body == "<p>Hi Ada</p>"


async def test_html_body_is_autoescaped_but_text_body_is_not() -> None:
    content = email(
        text_body="{{ profile.traits.first_name }}", html_body="{{ profile.traits.first_name }}"
    )
    rendered = render_email(content, ada(first_name="<script>x</script>"))
    assert rendered.html_body == "&lt;script&gt;x&lt;/script&gt;"
    assert rendered.text_body == "<script>x</script>"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ profile.__init__.__globals__ }}",
        "{% set x = profile.traits.update({'a': 1}) %}",
    ],
)
async def test_sandbox_refuses_unsafe_attribute_access(source: str) -> None:
    with pytest.raises(TemplateProblem) as problem:
        render_email(email(text_body=source), ada())
    assert problem.value.part == "text_body"


async def test_missing_trait_is_an_error_unless_defaulted() -> None:
    with pytest.raises(TemplateProblem):
        render_email(email(text_body="Hi {{ profile.traits.nickname }}"), ada())
    rendered = render_email(
        email(text_body="Hi {{ profile.traits.nickname | default('there') }}"), ada()
    )
    assert rendered.text_body == "Hi there"


async def test_subject_newlines_are_folded_to_spaces() -> None:
    rendered = render_email(email(subject="A\n{{ profile.traits.first_name }}\r\nB"), ada())
    assert rendered.subject == "A Ada B"


async def test_syntax_error_names_the_part() -> None:
    with pytest.raises(TemplateProblem) as problem:
        check_email_syntax(email(text_body="fine", html_body="{% if %}"))
    assert problem.value.part == "html_body"


async def test_preview_shows_missing_values_but_stays_sandboxed() -> None:
    content = email(text_body="Hi {{ profile.traits.first_name }} {{ data.plan }}")
    rendered = render_email(content, profile_context("u1", {"first_name": "Ada"}, {}), preview=True)
    assert rendered.text_body == "Hi Ada {{ plan }}"
    unsafe = render_email(email(text_body="{{ ''.__class__.__mro__ }}"), ada(), preview=True)
    assert unsafe.text_body == "{{ __class__ }}"
