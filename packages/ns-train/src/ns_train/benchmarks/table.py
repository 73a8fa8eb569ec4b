"""Results as Markdown (saved beside the JSON file) and as rich tables (printed)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from ns_train.benchmarks.results import Change, Results, Section
from ns_train.benchmarks.rounds import Row

HEADER = ("candidate", "metric", "median", "min–max", "× baseline", "× min–max")


def number(value: float | None) -> str:
    """3 significant digits or more, thousands separated: 1,234 / 56.7 / 0.123."""
    if value is None:
        return "—"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def cells(row: Row) -> tuple[str, ...]:
    spread = f"{number(min(row.values))}–{number(max(row.values))}"
    if row.ratio is None:
        ratio, ratio_spread = "—", ""
    else:
        ratio = f"{row.ratio:.2f}×"
        ratio_spread = f"{min(row.ratios):.2f}–{max(row.ratios):.2f}"
    name = row.name + (f" ({row.note})" if row.note else "")
    return (name, f"{row.metric}", number(row.median), spread, ratio, ratio_spread)


def machine_line(results: Results) -> str:
    m = results.machine
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    load = f"load average {_load(m.get('load_start'))} at start, {_load(m.get('load_end'))} at end"
    versions = m.get("versions", {})
    software = ", ".join(
        f"{name} {versions[name]}"
        for name in ("torch", "timm", "nvidia-dali-cuda130", "webdataset")
        if versions.get(name)
    )
    return (
        f"{m['host']}: {m['cpu']}, {m['usable_cores']} usable cores{gpu}; python {m['python']}, "
        f"{software}; {load}"
    )


def _load(values: list[float] | None) -> str:
    return f"{values[0]:.2f}" if values else "?"


def params_line(section: Section) -> str:
    return ", ".join(f"{k} {v}" for k, v in section.params.items())


def markdown(results: Results) -> str:
    """The whole run as Markdown: the machine, then one table per section."""
    s = results.settings
    lines = [
        f"# ns bench, {results.started[:10]}",
        "",
        f"{machine_line(results)}.",
        f"Scale {s['scale']}, median of {s['repeats']} interleaved rounds; × baseline: the median "
        "of each round's ratio to the baseline in that round (more than 1 is better).",
    ]
    if s.get("seconds per part"):
        parts = ", ".join(f"{name} {number(t)} s" for name, t in s["seconds per part"].items())
        lines.append(f"Took {number(s['seconds'])} s in all: {parts}.")
    for section in results.sections:
        lines += ["", f"## {section.name}: {section.title}", "", f"{params_line(section)}.", ""]
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("| --- | --- | ---: | ---: | ---: | ---: |")
        lines += [
            "| " + " | ".join(c.replace("|", "\\|") for c in cells(r)) + " |" for r in section.rows
        ]
        lines += [""] + [f"- {note}" for note in section.notes] if section.notes else []
    return "\n".join(lines) + "\n"


def rich_tables(results: Results) -> list[Table]:
    """One rich table per section, titled with what it compares."""
    tables = []
    for section in results.sections:
        table = Table(
            title=f"{section.name}: {section.title}",
            caption=escape(params_line(section) + "".join(f"\n{n}" for n in section.notes)),
            title_justify="left",
            caption_justify="left",
        )
        for number_column, heading in enumerate(HEADER):
            table.add_column(heading, justify="right" if number_column >= 2 else "left")
        for row in section.rows:
            table.add_row(*(escape(c) for c in cells(row)))
        tables.append(table)
    return tables


def comparison_table(changes: list[Change], before: str, after: str) -> Table:
    """Per row: A's and B's median, the change, and each file's ratio to its own baseline."""
    table = Table(title=f"A = {before}\nB = {after}", title_justify="left")
    for heading in ("section", "candidate", "metric", "A", "B", "B vs A", "A × base", "B × base"):
        table.add_column(
            heading, justify="left" if heading in ("section", "candidate", "metric") else "right"
        )
    for c in changes:
        better = c.better
        style = "green" if better > 1.05 else "red" if better < 1 / 1.05 else ""
        table.add_row(
            c.section,
            escape(c.name),
            escape(c.metric),
            number(c.before),
            number(c.after),
            f"[{style}]{c.change:+.1%}[/]" if style else f"{c.change:+.1%}",
            _times(c.ratio_before),
            _times(c.ratio_after),
        )
    return table


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"
