"""Copy one storage into another (SQLite to PostgreSQL, or any pair): ``feedwatch migrate-storage``.

Every feed's state, article, alert and delivery is copied as it is, ids and keys included, so
the destination knows every article already seen (nothing alerts again) and every delivery's
state (nothing delivered is sent again, nothing queued is lost). Tables go in foreign-key order,
in batches read in key order; each batch is one transaction on the destination. Counts are
verified per table at the end. The daemon registry is not copied: it describes processes, not
data.

The source must not change meanwhile: open it with role ``daemon`` (on SQLite that refuses
while a daemon runs) or stop the daemons first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from storage.base import TABLES, Storage, StorageError, TableName

Progress = Callable[[TableName, int, int], None]  # table, rows copied so far, rows in all


class CopyError(StorageError):
    """The copy was refused or did not verify."""


@dataclass(slots=True)
class CopyReport:
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # table: (source, dest)

    @property
    def ok(self) -> bool:
        return all(src == dst for src, dst in self.counts.values())

    def summary(self) -> str:
        return ", ".join(f"{table} {dst}" for table, (_src, dst) in self.counts.items())


async def copy_storage(
    src: Storage,
    dst: Storage,
    *,
    progress: Progress | None = None,
    batch: int = 2000,
    replace: bool = False,
) -> CopyReport:
    """Copy everything from ``src`` into ``dst`` (both open) and verify the counts.

    A destination holding any feedwatch data is refused (``CopyError``) unless ``replace``,
    which empties it first; so a copy that stopped half-way is simply run again with it.
    """
    if batch <= 0:
        raise ValueError("batch must be positive")
    totals = {table: await src.count_rows(table) for table in TABLES}
    existing = {table: await dst.count_rows(table) for table in TABLES}
    if any(existing.values()):
        if not replace:
            held = ", ".join(f"{n} {table}" for table, n in existing.items() if n)
            raise CopyError(
                f"the destination {dst.description} is not empty ({held}); copy into an empty "
                "database, or replace its contents"
            )
        await dst.clear_all()
    report = CopyReport()
    for table, (keys, _columns) in TABLES.items():
        copied = 0
        after: tuple[object, ...] | None = None
        if progress is not None:
            progress(table, 0, totals[table])
        while True:
            rows = await src.export_rows(table, after, batch)
            if not rows:
                break
            copied += await dst.import_rows(table, rows)
            after = tuple(rows[-1][k] for k in keys)
            if progress is not None:
                progress(table, copied, totals[table])
            if len(rows) < batch:
                break
        report.counts[table] = (await src.count_rows(table), await dst.count_rows(table))
    if not report.ok:
        diff = ", ".join(
            f"{table}: {s} in the source, {d} copied"
            for table, (s, d) in report.counts.items()
            if s != d
        )
        raise CopyError(f"the copy does not match its source ({diff}); was the source in use?")
    return report
