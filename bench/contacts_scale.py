"""Accounts with contacts, imported and scored, against the same accounts without contacts.

    .venv/bin/python bench/contacts_scale.py [--customers 100000] [--contacts 25]
        [--page-size 500] [--database-url postgresql+psycopg://127.0.0.1:5432/bench_contacts]
        [--seed 3]

The same `--customers` generated accounts (`retention.model.generator`, seed `--seed`) twice:
without contacts (the baseline) and with `--contacts` people each (retention/model/people.py;
nothing else differs). Each population is written as CSV population files (the contacts one
JSON cell, as docs/operators.md describes; FILE_CUSTOMERS customers a file, under the CSV size
limit) and imported by `starter.py customers import FILES` in a subprocess into a PostgreSQL
database of its own (created afresh, dropped at the end). Then both are scored the way the
portfolio scan's `score_page` activity does it (retention/scan/scoring.py: read a page, parse,
assess with the shipped churn model, decide, record), one page of each in turn, so a busy
machine slows both alike.

Prints one JSON line: customers, contacts, page_size; for `baseline` and `with_contacts`:
- import_s, imported_per_s: the import command's wall time and rate; import_cpu_s,
  imported_per_cpu_s: its CPU time (the CLI process; PostgreSQL's own is not counted) and rate;
  import_peak_rss_mib: the CLI process's own peak memory (it checks every file, then reads them
  again a page at a time to save them; spawned through a small process, see `_MEASURED`);
- file_bytes_per_account: the CSV files' size ÷ customers; stored_bytes_per_account: the
  customers table on disk (table, TOAST and index) ÷ customers; snapshot_bytes_per_account: the
  average stored snapshot, what the scan reads (`pg_column_size`, compressed as stored), and
  contacts_bytes_per_account: the same for the contacts column beside it;
- imported: customer rows; contacts_stored: contacts in the stored rows (SQL over the JSON);
  read_back_customers, contacts_read_back: `load_customer` of every customer up to
  READ_BACK_SAMPLE of them, evenly spaced, and the contacts those snapshots carry;
- scored, at_risk, failures; score_s, score_cpu_s (the process's CPU time in `score_page`,
  XGBoost's threads included; PostgreSQL's not); scored_per_cpu_s;
then score_cpu_ratio (with_contacts' scored_per_cpu_s ÷ the baseline's: 1 is no per-contact cost in
scoring), import_cpu_ratio (the same for the import), same_at_risk (both scans picked the same
customers: the contacts show the champion status the generator drew, so they must), and
load_average before and after (1 minute).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scan import drop_database, fresh_database  # noqa: E402
from retention.model.generator import generate_population  # noqa: E402
from retention.model.scorer import ModelScorer  # noqa: E402
from retention.population import write_customers_csv  # noqa: E402
from retention.rulebook.loader import Rulebook, load_rulebook  # noqa: E402
from retention.scan.requests import DEFAULT_PAGE_SIZE, PageRequest, ScoredPage  # noqa: E402
from retention.scan.scoring import score_page  # noqa: E402
from retention.store.records import load_customer  # noqa: E402
from retention.store.tables import CustomerRow  # noqa: E402

DATABASE_URL = "postgresql+psycopg://127.0.0.1:5432/bench_contacts"
MODEL = ROOT / "models" / "churn-default"
FILE_CUSTOMERS = 20_000  # 25 contacts take ~5 KB an account: ~100 MB a file, under MAX_CSV_BYTES
READ_BACK_SAMPLE = 1_000
POPULATIONS = ("baseline", "with_contacts")


def write_files(folder: Path, customers: int, contacts: int, seed: int) -> list[Path]:
    """The population as CSV files of FILE_CUSTOMERS customers each."""
    population = generate_population(customers, seed=seed, contacts=contacts).customers
    files = []
    for n, start in enumerate(range(0, customers, FILE_CUSTOMERS), start=1):
        files.append(folder / f"customers-{n:02d}.csv")
        write_customers_csv(population[start : start + FILE_CUSTOMERS], files[-1])
    return files


# Runs argv[1:] as its child and prints the child's exit code, CPU seconds and peak RSS (KiB).
# Linux keeps a process's peak RSS across exec, and a child starts from its parent's: spawned
# straight from this process, the import's peak was never below this process's own (the
# generated population's), so a small process in between spawns it.
_MEASURED = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime,
                  usage.ru_maxrss]))
"""


def import_files(files: list[Path], url: str) -> dict[str, Any]:
    """`starter.py customers import FILES`: its wall time, CPU time and peak memory."""
    env = {**os.environ, "RETENTION_DATABASE_URL": url}
    command = [sys.executable, "starter.py", "customers", "import", *map(str, files)]
    began = time.perf_counter()
    launcher = [sys.executable, "-c", _MEASURED, *command]
    measured = subprocess.run(launcher, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    exit_code, cpu_seconds, peak_kib = json.loads(measured.stdout)
    if exit_code != 0:
        raise SystemExit(f"customers import failed ({exit_code}): {measured.stderr[-2000:]}")
    return {
        "import_s": seconds,
        "import_cpu_s": cpu_seconds,
        "import_peak_rss_mib": round(peak_kib / 1024),
        "file_bytes": sum(file.stat().st_size for file in files),
    }


def stored(engine: Engine) -> dict[str, int]:
    """What the customers table holds: rows, contacts, bytes on disk, per snapshot and per
    contacts list."""
    query = text(
        "SELECT count(*), coalesce(sum(json_array_length(contacts)), 0), "
        "pg_total_relation_size('customers'), coalesce(avg(pg_column_size(snapshot)), 0), "
        "coalesce(avg(pg_column_size(contacts)), 0) FROM customers"
    )
    with engine.connect() as connection:
        rows, contacts, table_bytes, snapshot_bytes, contacts_bytes = connection.execute(
            query
        ).one()
    return {
        "imported": rows,
        "contacts_stored": contacts,
        "table_bytes": table_bytes,
        "snapshot_bytes": round(snapshot_bytes),
        "contacts_bytes": round(contacts_bytes),
    }


def read_back(engine: Engine, customers: int) -> dict[str, int]:
    """`load_customer` of up to READ_BACK_SAMPLE customers, evenly spaced."""
    with engine.connect() as connection:
        ids = connection.execute(text(f"SELECT customer_id FROM {CustomerRow.__tablename__}"))
        every = sorted(ids.scalars())[:: max(1, customers // READ_BACK_SAMPLE)]
    snapshots = [load_customer(engine, customer_id) for customer_id in every]
    return {
        "read_back_customers": len(snapshots),
        "contacts_read_back": sum(len(snapshot.contacts) for snapshot in snapshots),
    }


class PageScorer:
    """One population's pages, scored in turn with the other's (`score_page` as the scan)."""

    def __init__(self, name: str, engine: Engine, page_size: int) -> None:
        self.name, self.engine, self.page_size = name, engine, page_size
        self.after: str | None = None
        self.pages = self.scored = self.failures = 0
        self.at_risk: list[str] = []
        self.seconds = self.cpu_seconds = 0.0
        self.done = False

    def next_page(self, rulebook: Rulebook, scorer: ModelScorer) -> None:
        self.pages += 1
        scan_id, size = f"bench-{self.name}", self.page_size
        request = PageRequest(scan_id=scan_id, page=self.pages, after=self.after, page_size=size)
        began, cpu = time.perf_counter(), time.process_time()
        page: ScoredPage = score_page(self.engine, rulebook, scorer, request)
        self.cpu_seconds += time.process_time() - cpu
        self.seconds += time.perf_counter() - began
        self.scored += page.scored
        self.failures += len(page.failures)
        self.at_risk += page.at_risk_ids
        self.after = page.last_customer_id
        self.done = page.read < self.page_size

    def figures(self) -> dict[str, Any]:
        return {
            "scored": self.scored,
            "at_risk": len(self.at_risk),
            "failures": self.failures,
            "score_s": round(self.seconds, 1),
            "score_cpu_s": round(self.cpu_seconds, 1),
            "scored_per_cpu_s": round(self.scored / self.cpu_seconds),
        }


def score_both(scorers: list[PageScorer]) -> None:
    """A page of each in turn, the first of the pair alternating, until both are done."""
    rulebook, model = load_rulebook(ROOT / "rules"), ModelScorer.load(MODEL)
    turn = 0
    while not all(scorer.done for scorer in scorers):
        for scorer in scorers[turn % 2 :] + scorers[: turn % 2]:
            if not scorer.done:
                scorer.next_page(rulebook, model)
        turn += 1


def prepare(
    name: str, contacts: int, args: argparse.Namespace, folder: Path, cleanup: ExitStack
) -> tuple[Engine, dict[str, Any]]:
    """One population generated, written, imported into its own database, and checked."""
    url = f"{args.database_url}_{name}"
    engine = fresh_database(url)
    cleanup.callback(drop_database, url)
    cleanup.callback(engine.dispose)
    (folder / name).mkdir()
    files = write_files(folder / name, args.customers, contacts, args.seed)
    gc.collect()  # the generated population is gone before the import and the scoring
    imported = import_files(files, url)
    table = stored(engine)
    n = args.customers
    return engine, {
        "import_s": round(imported["import_s"], 1),
        "imported_per_s": round(n / imported["import_s"]),
        "import_cpu_s": round(imported["import_cpu_s"], 1),
        "imported_per_cpu_s": round(n / imported["import_cpu_s"]),
        "import_peak_rss_mib": imported["import_peak_rss_mib"],
        "file_bytes_per_account": round(imported["file_bytes"] / n),
        "stored_bytes_per_account": round(table["table_bytes"] / n),
        "snapshot_bytes_per_account": table["snapshot_bytes"],
        "contacts_bytes_per_account": table["contacts_bytes"],
        "imported": table["imported"],
        "contacts_stored": table["contacts_stored"],
        **read_back(engine, n),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    scorers = []
    with tempfile.TemporaryDirectory(prefix="bench-contacts-") as name, ExitStack() as cleanup:
        for population, contacts in zip(POPULATIONS, (0, args.contacts), strict=True):
            engine, results[population] = prepare(population, contacts, args, Path(name), cleanup)
            scorers.append(PageScorer(population, engine, args.page_size))
        score_both(scorers)
    for scorer in scorers:
        results[scorer.name] |= scorer.figures()
    baseline, with_contacts = results["baseline"], results["with_contacts"]
    return {
        "bench": "contacts_scale",
        "customers": args.customers,
        "contacts": args.contacts,
        "page_size": args.page_size,
        **results,
        "score_cpu_ratio": round(
            with_contacts["scored_per_cpu_s"] / baseline["scored_per_cpu_s"], 2
        ),
        "import_cpu_ratio": round(
            with_contacts["imported_per_cpu_s"] / baseline["imported_per_cpu_s"], 2
        ),
        "same_at_risk": scorers[0].at_risk == scorers[1].at_risk,
        "load_average": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=25)
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--database-url", default=DATABASE_URL)
    parser.add_argument("--seed", type=int, default=3)
    print(json.dumps(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
