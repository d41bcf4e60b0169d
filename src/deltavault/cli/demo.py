"""demo-data: a small, realistic trading state to try deltavault on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deltavault.cli.common import JsonOpt, emit_json, human_bytes, out_console
from deltavault.errors import UserError


def demo_data(
    directory: Annotated[Path, typer.Argument(help="Directory to create or change.")],
    scale: Annotated[float, typer.Option(help="1 is about 600 MiB; 0.01 about 6 MiB.")] = 0.01,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    mutate: Annotated[bool, typer.Option(
        "--mutate", help="Apply one trading day of change to an existing state.")] = False,
    day: Annotated[int, typer.Option(help="Which day to apply with --mutate (1, 2, ...).")] = 1,
    json_out: JsonOpt = False,
) -> None:
    """Make sample trading state: order books, positions DB, model, trade log, config."""
    from deltavault import sampledata

    try:
        if mutate:
            change = sampledata.mutate(directory, day=day, seed=seed)
            doc = change.to_dict()
            text = (f"day {day}: {len(change.books_moved)} order books moved, "
                    f"{change.positions_updated} positions updated, "
                    f"{change.positions_inserted} inserted, {len(change.layers_tuned)} model "
                    f"layer(s) tuned, {change.trades_appended} trades appended")
        else:
            m = sampledata.generate(directory, scale=scale, seed=seed)
            doc = m.to_dict()
            text = (f"wrote {m.files} files, {human_bytes(m.total_bytes)} of trading state "
                    f"to {directory}")
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    emit_json(doc) if json_out else out_console.print(text)
