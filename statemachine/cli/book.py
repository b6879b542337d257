"""Commands that read a book of debits: ``show``, ``stats`` and ``verify``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from ..operations import check_alerts, prometheus_text
from .options import (
    Duration,
    db_option,
    delivery,
    load_spec,
    open_engine,
    pairs,
    rate,
    spec_option,
)


@click.command()
@click.argument("debit_id")
@db_option()
@spec_option
def show(debit_id: str, db: str, spec_path: Path | None) -> None:
    """Show one debit: its state, every stored event with its verdict, and its notices.

    \b
    Example:
        statemachine show loan-00042/2026-03 --db march.sqlite
    """
    with open_engine(db, load_spec(spec_path), create=False) as engine:
        debit = engine.get(debit_id)
        if debit is None:
            raise click.ClickException(f"no debit {debit_id!r} in {db}")
        review = f", needs review: {debit.review_reason}" if debit.needs_review else ""
        click.echo(
            f"{debit.debit_id}: {debit.state}, attempt {debit.attempt}, version {debit.version}{review}"
        )
        for stored in engine.history(debit_id):
            when = stored.occurred_at.isoformat() if stored.occurred_at else "-"
            click.echo(
                f"  {stored.seq:>6} {stored.verdict:9} {stored.type or '-':9} #{stored.attempt or '-'} "
                f"{stored.source or '-':10} {when}  {stored.event_id or '-'}: {stored.reason}"
            )
        for notice in engine.notices(debit_id):
            sent = (
                f" via {notice.channel} at {notice.sent_at.isoformat()}" if notice.sent_at else ""
            )
            click.echo(
                f"  notice {notice.kind}@{notice.attempt} ({notice.outcome}): {notice.status}{sent}"
            )


@click.command()
@db_option()
@spec_option
@click.option(
    "--stuck-after",
    type=Duration(),
    default="3d",
    show_default=True,
    help="A debit submitted this long with no news counts as stuck.",
)
@click.option("--prometheus", is_flag=True, help="Print Prometheus text exposition instead.")
def stats(db: str, spec_path: Path | None, stuck_after: timedelta, prometheus: bool) -> None:
    """Print operations metrics and the alerts they raise.

    \b
    Example:
        statemachine stats --db march.sqlite --stuck-after 2d
        statemachine stats --db march.sqlite --prometheus > metrics.prom
    """
    with open_engine(db, load_spec(spec_path), create=False) as engine:
        metrics = engine.metrics(stuck_after=stuck_after)
        if prometheus:
            click.echo(prometheus_text(metrics), nl=False)
            return
        click.echo(f"events by verdict   {pairs(metrics.events_by_verdict)}")
        click.echo(f"debits by state     {pairs(metrics.debits_by_state)}")
        click.echo(f"notices by status   {pairs(metrics.notices_by_status)}")
        click.echo(f"success rate        {rate(metrics.success_rate)}")
        click.echo(f"delivery rate       {delivery(metrics)}")
        click.echo(f"acceptance rate     {rate(metrics.acceptance_rate)}")
        click.echo(f"conflicts           {metrics.conflicts}")
        click.echo(f"needs review        {metrics.needs_review}")
        click.echo(f"misinformed         {metrics.misinformed}")
        click.echo(f"stuck in submitted  {metrics.stuck}")
        listed = engine.stuck(stuck_after)[:10]
        asked = engine.last_inquiries(debit_id for debit_id, _ in listed)
        for debit_id, last in listed:
            inquiry = asked.get(debit_id)
            told = (
                f"; last inquiry {inquiry.asked_at.isoformat()}: {inquiry.outcome}"
                if inquiry
                else ""
            )
            click.echo(f"  {debit_id} (last news {last.isoformat()}{told})")
        click.echo(
            f"inquiries           asked {metrics.inquiries_asked}, answered "
            f"{metrics.inquiries_answered}, errors {metrics.inquiry_errors}"
        )
        for alert in check_alerts(metrics):
            click.echo(f"ALERT {alert}")


@click.command()
@db_option()
@spec_option
def verify(db: str, spec_path: Path | None) -> None:
    """Check P6 for every debit: the live state equals a rebuild from its stored events.

    \b
    Example:
        statemachine verify --db march.sqlite
    """
    with open_engine(db, load_spec(spec_path), create=False) as engine:
        problems = engine.verify()
        count = len(list(engine.store.debit_ids()))
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(f"{len(problems)} of {count} debits differ from their rebuild")
    click.echo(f"{count} debits: live state equals the rebuild from stored events")
