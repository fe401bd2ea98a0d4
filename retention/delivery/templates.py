"""Message templates: `rules/templates/<name>.j2`, each with a `subject` and a `body` block.

Rendered in Jinja's sandbox with StrictUndefined: a rule author's template can read the context it
is given and nothing else, and a missing variable is an error, never an empty string.
Templates are rendered from a `TemplateSet`, the sources as one rule-set version held them, so a
running journey's messages do not change when someone edits a template mid-journey.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    DictLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from pydantic import BaseModel, Field

from retention.errors import InvalidInput


class TemplateFault(InvalidInput):
    """A template that cannot render: its file, the line (when Jinja knows it) and why."""

    def __init__(self, template: str, line: int | None, problem: str) -> None:
        where = f" line {line}" if line is not None else ""
        super().__init__(f"template {template!r}{where}: {problem}")
        self.template, self.line, self.problem = template, line, problem


class RenderedMessage(BaseModel):
    subject: str
    body: str
    html: str | None = Field(default=None, description="the body as HTML, for email")


@dataclass(frozen=True, eq=False)  # compared and cached by identity: one per rule-set version
class TemplateSet:
    """Template sources by file name (`retention_offer.j2`), and the folder they came from."""

    folder: Path
    sources: Mapping[str, str]

    @classmethod
    def read(cls, folder: Path) -> TemplateSet:
        return cls(folder, {p.name: p.read_text("utf-8") for p in sorted(folder.glob("*.j2"))})

    def __contains__(self, template: object) -> bool:
        return f"{template}.j2" in self.sources


def render_message(
    templates: TemplateSet, template: str, context: dict[str, Any], *, html: bool = False
) -> RenderedMessage:
    """Render `<template>.j2` from `templates`; any template fault is an InvalidInput naming it.

    With `html`, the body is rendered a second time with autoescape, so a value such as a
    company name cannot inject markup, and laid out as paragraphs.
    """
    name = f"{template}.j2"
    try:
        loaded = _environment(templates).get_template(name)
        subject = _render_block(loaded, "subject", context)
        body = _render_block(loaded, "body", context)
        html_body = None
        if html:
            escaping = _environment(templates, autoescape=True).get_template(name)
            html_body = _html_paragraphs(_render_block(escaping, "body", context))
    except TemplateNotFound as exc:
        raise InvalidInput(f"template {name!r} not found in {templates.folder}") from exc
    except TemplateSyntaxError as exc:
        raise TemplateFault(name, exc.lineno, exc.message or "syntax error") from exc
    except SecurityError as exc:
        raise TemplateFault(name, _line_of(exc), f"refused by the sandbox: {exc}") from exc
    except UndefinedError as exc:
        problem = f"undefined variable: {exc.message}"
        raise TemplateFault(name, _line_of(exc), problem) from exc
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 - the author's template code, e.g. None | round
        problem = f"cannot render: {type(exc).__name__}: {exc}"
        raise TemplateFault(name, _line_of(exc), problem) from exc
    return RenderedMessage(
        subject=" ".join(subject.split()), body=body.strip() + "\n", html=html_body
    )


@lru_cache(maxsize=32)
def _environment(templates: TemplateSet, *, autoescape: bool = False) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=DictLoader(dict(templates.sources)),
        undefined=StrictUndefined,
        autoescape=autoescape or select_autoescape(["html", "htm", "xml", "html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render_block(template: Template, block: str, context: dict[str, Any]) -> str:
    render = template.blocks.get(block)
    if render is None:
        raise InvalidInput(f"template {template.name!r} has no {{% block {block} %}}")
    return "".join(render(template.new_context(context)))


def _line_of(exc: BaseException) -> int | None:
    """The template line a render error came from: the innermost frame of compiled template
    code in the traceback, mapped back to its source line."""
    line, frame = None, exc.__traceback__
    while frame is not None:
        compiled = frame.tb_frame.f_globals.get("__jinja_template__")
        if compiled is not None:
            line = compiled.get_corresponding_lineno(frame.tb_lineno)
        frame = frame.tb_next
    return line


def _html_paragraphs(escaped: str) -> str:
    """Blank-line separated paragraphs → <p>, line breaks → <br>; the values are already escaped
    and the template's own text is the rule author's (it passes as written)."""
    paragraphs = [p.strip() for p in escaped.strip().split("\n\n") if p.strip()]
    return "".join(f"<p>{'<br>'.join(p.splitlines())}</p>\n" for p in paragraphs)
