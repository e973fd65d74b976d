"""Template rendering in a Jinja2 sandbox.

Templates are written by marketers, so they run in `ImmutableSandboxedEnvironment`: no access to
private or dunder attributes, no mutation of the data given. HTML bodies are autoescaped, so a
trait cannot inject markup. A reference to something the profile lacks is an error (not an empty
string), so a broken message is never sent; templates use `| default("there")` for optional
traits.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engage.v1 import template_pb2

# Largest template source accepted, per part, and largest rendered part.
MAX_SOURCE_CHARS = 256 * 1024
MAX_RENDERED_CHARS = 1024 * 1024


def _environment(undefined: type[jinja2.Undefined], html: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=undefined, autoescape=html)


# The parts of an email template; True where the part is HTML (autoescaped).
EMAIL_PARTS: Mapping[str, bool] = {
    "from": False,
    "subject": False,
    "text_body": False,
    "html_body": True,
}


class PreviewUndefined(jinja2.ChainableUndefined):
    """Renders a missing value as `{{ name }}`, so a preview shows what the sample lacked."""

    def __str__(self) -> str:
        return f"{{{{ {self._undefined_name or '?'} }}}}"


# Sends: a missing value is an error. Previews: it shows as itself (`{{ data.plan }}`).
_SEND = {html: _environment(jinja2.StrictUndefined, html) for html in (False, True)}
_PREVIEW = {html: _environment(PreviewUndefined, html) for html in (False, True)}


class TemplateProblem(Exception):
    """A template part that does not parse or does not render; `part` names it."""

    def __init__(self, part: str, description: str) -> None:
        super().__init__(f"{part}: {description}")
        self.part = part
        self.description = description


@dataclass(frozen=True)
class RenderedEmail:
    sender: str
    subject: str
    text_body: str
    html_body: str


def check_email_syntax(content: template_pb2.EmailContent) -> None:
    """Raise TemplateProblem for the first part that is too long or not valid Jinja."""
    for part, html in EMAIL_PARTS.items():
        source = getattr(content, part)
        if len(source) > MAX_SOURCE_CHARS:
            raise TemplateProblem(part, f"longer than {MAX_SOURCE_CHARS} characters")
        try:
            _SEND[html].parse(source)
        except jinja2.TemplateSyntaxError as error:
            raise TemplateProblem(part, f"line {error.lineno}: {error.message}") from error


def render_email(
    content: template_pb2.EmailContent, context: Mapping[str, Any], preview: bool = False
) -> RenderedEmail:
    """Render every part of an email template with `context` (`profile`, `data`, ...).

    A preview shows what is missing instead of failing on it.
    """
    environments = _PREVIEW if preview else _SEND
    rendered = {
        part: _render(part, getattr(content, part), context, environments[html])
        for part, html in EMAIL_PARTS.items()
    }
    return RenderedEmail(
        sender=rendered["from"].strip(),
        subject=" ".join(rendered["subject"].split()),
        text_body=rendered["text_body"],
        html_body=rendered["html_body"],
    )


def _render(
    part: str, source: str, context: Mapping[str, Any], environment: ImmutableSandboxedEnvironment
) -> str:
    if not source:
        return ""
    try:
        output = environment.from_string(source).render(context)
    except jinja2.TemplateError as error:
        # SecurityError, UndefinedError and syntax errors all derive from TemplateError.
        raise TemplateProblem(part, error.message or type(error).__name__) from error
    except (TypeError, ValueError, ArithmeticError) as error:
        # Only the kind: Python's text quotes the value (`int('Ada')`), which may be personal.
        raise TemplateProblem(part, type(error).__name__) from error
    if len(output) > MAX_RENDERED_CHARS:
        raise TemplateProblem(part, f"renders longer than {MAX_RENDERED_CHARS} characters")
    return output


def profile_context(
    user_id: str, traits: Mapping[str, Any], data: Mapping[str, Any], **extra: Any
) -> dict[str, Any]:
    """What a template sees: `profile.user_id`, `profile.traits.*`, `data.*` and extras."""
    return {"profile": {"user_id": user_id, "traits": dict(traits)}, "data": dict(data), **extra}
