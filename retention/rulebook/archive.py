"""The archive of rule-set versions: saved when a worker loads one, read to render a running
journey's messages with the templates of the rule set that made its plan.

In rulebook/, not store/: it turns a Rulebook into `rule_sets` rows and back into templates, so
it sits above both the store and delivery's templates (docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from retention.delivery.templates import TemplateSet
from retention.rulebook.loader import Rulebook
from retention.store.db import session
from retention.store.tables import RuleSetRow

TEMPLATES = "templates/"


def archive_rule_set(engine: Engine, rulebook: Rulebook) -> None:
    """Idempotent: a version already archived (by this or another worker) is left as it is."""
    with session(engine) as db:
        if db.get(RuleSetRow, rulebook.version) is not None:
            return
    files = dict(rulebook.files.texts)
    files |= {TEMPLATES + name: text for name, text in rulebook.templates.sources.items()}
    try:
        with session(engine) as db:
            db.add(RuleSetRow(version=rulebook.version, files=files))
    except IntegrityError:
        pass  # another worker archived the same version at the same moment


def archived_templates(engine: Engine, version: str, folder: Path) -> TemplateSet | None:
    with session(engine) as db:
        row = db.get(RuleSetRow, version)
    if row is None:
        return None
    sources = {
        k.removeprefix(TEMPLATES): v for k, v in row.files.items() if k.startswith(TEMPLATES)
    }
    return TemplateSet(folder, sources)
