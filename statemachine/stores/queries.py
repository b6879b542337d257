"""The SQL stores' statements, by name, written once: procrastinate's ``queries.sql`` idea.

>>> pyformat(type("PG", (Queries,), {})).revision
'SELECT revision FROM debits WHERE debit_id = %s'
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

# The bucket (timeline.bucket_at) of a stored UTC time: whole seconds since the epoch,
# divided by the width in seconds. Text times are cut to the second first: SQLite rounds
# fractions, and 10:59:59.9999 would fall in the next hour.
_BUCKET = "CAST(strftime('%s', substr({}, 1, 19)) AS INTEGER) / ?"


class Queries:
    """Every statement an SQL store runs, by name, written once with ``?`` placeholders.

    A dialect overrides only what really differs (how a list of ids travels, locking, dates);
    :func:`pyformat` rewrites the placeholders for drivers that take ``%s``. Statements that
    take a list of ids have ``{}`` where ``SQLStore._select_in`` puts it.
    """

    no_limit: ClassVar[Any] = -1  # what LIMIT takes for "no limit"
    # (revision of the debit, payload of an accepted event_id)
    lookup: ClassVar[str] = (
        "SELECT (SELECT revision FROM debits WHERE debit_id = ?),"
        " (SELECT payload FROM events WHERE event_id = ? AND accepted = 1)"
    )
    revision: ClassVar[str] = "SELECT revision FROM debits WHERE debit_id = ?"
    revisions: ClassVar[str] = "SELECT debit_id, revision FROM debits WHERE debit_id IN ({})"
    priors: ClassVar[str] = (
        "SELECT event_id, payload FROM events WHERE accepted = 1 AND event_id IN ({})"
    )
    debit_row: ClassVar[str] = (
        "SELECT state, attempt, version, needs_review, review_reason, amount, currency"
        " FROM debits WHERE debit_id = ?"
    )
    facts: ClassVar[str] = (
        "SELECT payload FROM events WHERE debit_id = ? AND accepted = 1 ORDER BY seq"
    )
    notices_of: ClassVar[str] = "SELECT * FROM notices WHERE debit_id = ?"
    # The same three for many debits at once: loading a batch costs three queries, not 3n.
    facts_in: ClassVar[str] = (
        "SELECT debit_id, payload FROM events WHERE accepted = 1 AND debit_id IN ({}) ORDER BY seq"
    )
    debit_rows_in: ClassVar[str] = (
        "SELECT debit_id, state, attempt, version, needs_review, review_reason, amount,"
        " currency FROM debits WHERE debit_id IN ({})"
    )
    notices_in: ClassVar[str] = (  # the columns in the order of Notice's fields
        "SELECT notice_id, debit_id, attempt, kind, outcome, due_at, created_at, status,"
        " sent_at, channel, deliveries, last_error, status_reason, version, tried, receipt_by"
        " FROM notices WHERE debit_id IN ({})"
    )
    insert_event: ClassVar[str] = (
        "INSERT INTO events (event_id, debit_id, type, attempt, occurred_at, source, verdict,"
        " reason, raw, payload, origin, accepted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    upsert_debit: ClassVar[str] = (
        "INSERT INTO debits (debit_id, state, attempt, version, needs_review, review_reason,"
        " amount, currency, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)"
        " ON CONFLICT (debit_id) DO UPDATE SET state = excluded.state,"
        " attempt = excluded.attempt, version = excluded.version,"
        " needs_review = excluded.needs_review, review_reason = excluded.review_reason,"
        " amount = excluded.amount, currency = excluded.currency,"
        " revision = debits.revision + 1"
    )
    # A debit's row as a unit of work leaves it, its revision counted there (sql_staging.py).
    save_debit: ClassVar[str] = (
        "INSERT INTO debits (debit_id, state, attempt, version, needs_review, review_reason,"
        " amount, currency, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (debit_id) DO UPDATE SET state = excluded.state,"
        " attempt = excluded.attempt, version = excluded.version,"
        " needs_review = excluded.needs_review, review_reason = excluded.review_reason,"
        " amount = excluded.amount, currency = excluded.currency,"
        " revision = excluded.revision"
    )
    touch_debit: ClassVar[str] = "UPDATE debits SET revision = revision + 1 WHERE debit_id = ?"
    # A re-planned notice keeps its claim: a dispatcher may be sending it right now.
    upsert_notice: ClassVar[str] = (
        "INSERT INTO notices (notice_id, debit_id, attempt, kind, outcome, status,"
        " due_at, created_at, sent_at, channel, deliveries, last_error, status_reason, version,"
        " tried, receipt_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (notice_id) DO UPDATE SET outcome = excluded.outcome,"
        " status = excluded.status, due_at = excluded.due_at, sent_at = excluded.sent_at,"
        " channel = excluded.channel, deliveries = excluded.deliveries,"
        " last_error = excluded.last_error, status_reason = excluded.status_reason,"
        " version = excluded.version, tried = excluded.tried, receipt_by = excluded.receipt_by"
    )
    # The due notices claimed in one statement: the rows come back in no set order.
    claim_due: ClassVar[str] = (  # (until, token, now, now, limit)
        "UPDATE notices SET claimed_until = ?, claimed_by = ?"
        " WHERE notice_id IN (SELECT notice_id FROM notices WHERE status = 'queued'"
        " AND due_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)"
        " ORDER BY due_at, debit_id, version LIMIT ?) RETURNING *"
    )
    # N7: only the holder of a live claim on a queued notice extends it, in one statement.
    renew_claim: ClassVar[str] = (  # (until, notice_id, token, now)
        "UPDATE notices SET claimed_until = ? WHERE notice_id = ? AND claimed_by = ?"
        " AND claimed_until > ? AND status = 'queued'"
    )
    renew_claims: ClassVar[str] = (  # (until, token, now, ids...)
        "UPDATE notices SET claimed_until = ? WHERE claimed_by = ? AND claimed_until > ?"
        " AND status = 'queued' AND notice_id IN ({}) RETURNING notice_id"
    )
    holds_claim: ClassVar[str] = "SELECT 1 FROM notices WHERE notice_id = ? AND claimed_by = ?"
    # The claims a token holds among some notices, read inside the write that records them.
    held: ClassVar[str] = "SELECT notice_id FROM notices WHERE claimed_by = ? AND notice_id IN ({})"
    # Written only where the token still holds the claim: a lease that ran out with no one
    # else claiming still lets the holder record what it sent.
    save_claimed: ClassVar[str] = (
        "UPDATE notices SET status = ?, due_at = ?, sent_at = ?, channel = ?, deliveries = ?,"
        " last_error = ?, status_reason = ?, tried = ?, receipt_by = ?, claimed_until = NULL,"
        " claimed_by = NULL WHERE notice_id = ? AND claimed_by = ?"
    )
    history: ClassVar[str] = (
        "SELECT * FROM events WHERE debit_id IS NOT DISTINCT FROM ? ORDER BY seq"
    )
    debit_ids: ClassVar[str] = "SELECT debit_id FROM debits ORDER BY debit_id"
    all_notices: ClassVar[str] = "SELECT * FROM notices ORDER BY created_at, notice_id"
    verdicts: ClassVar[str] = "SELECT verdict, count(*) FROM events GROUP BY verdict"
    states: ClassVar[str] = "SELECT state, count(*) FROM debits GROUP BY state"
    notice_statuses: ClassVar[str] = "SELECT status, count(*) FROM notices GROUP BY status"
    review: ClassVar[str] = "SELECT count(*) FROM debits WHERE needs_review"
    sources: ClassVar[str] = (
        "SELECT source, count(*) FROM events WHERE accepted = 1 GROUP BY source"
    )
    stuck: ClassVar[str] = (  # (state, before)
        "SELECT d.debit_id, max(e.occurred_at) FROM debits d JOIN events e"
        " ON e.debit_id = d.debit_id AND e.accepted = 1 WHERE d.state = ?"
        " GROUP BY d.debit_id HAVING max(e.occurred_at) < ? ORDER BY 2, 1"
    )
    queued: ClassVar[str] = (  # (since, until)
        "SELECT debit_id, notice_id, due_at FROM notices WHERE status = 'queued'"
        " AND due_at >= ? AND due_at <= ? ORDER BY due_at, notice_id"
    )
    next_due: ClassVar[str] = (
        "SELECT min(due_at) FROM notices WHERE status = 'queued' AND due_at > ?"
    )
    notice_tally: ClassVar[str] = (
        "SELECT kind, status, substr(due_at, 1, 10), count(*) FROM notices GROUP BY 1, 2, 3"
    )
    outcomes: ClassVar[str] = "SELECT debit_id, state, attempt FROM debits WHERE debit_id IN ({})"
    told: ClassVar[str] = (  # (outcome, states)
        "SELECT DISTINCT d.debit_id FROM debits d JOIN notices n ON n.debit_id = d.debit_id"
        " AND n.attempt = d.attempt WHERE n.status IN ('sent', 'delivered')"
        " AND n.sent_at IS NOT NULL AND n.outcome = ?"
        " AND d.state IN ({}) ORDER BY d.debit_id"
    )
    last_origin: ClassVar[str] = (
        "SELECT origin FROM events WHERE origin LIKE ? ESCAPE '!' ORDER BY seq DESC LIMIT 1"
    )
    # N6: the last notice told (notices.last_told: sent or delivered, by sent_at, then
    # version) per debit, against the debit now and the notices that speak for it.
    misinformed: ClassVar[str] = (  # (states)
        "SELECT count(*) FROM debits d JOIN (SELECT debit_id, attempt, outcome, version,"
        " row_number() OVER (PARTITION BY debit_id ORDER BY sent_at DESC, version DESC) AS rn"
        " FROM notices WHERE status IN ('sent', 'delivered') AND sent_at IS NOT NULL) l"
        " ON l.debit_id = d.debit_id AND l.rn = 1 WHERE d.state IN ({}) AND"
        " (l.attempt <> d.attempt OR l.outcome <> d.state OR EXISTS (SELECT 1 FROM notices o"
        " WHERE o.debit_id = d.debit_id AND o.status IN ('queued', 'sent', 'delivered')"
        " AND o.version > l.version))"
    )
    review_ids: ClassVar[str] = "SELECT debit_id FROM debits WHERE needs_review ORDER BY debit_id"
    # Receipts (N8).
    notice_debit: ClassVar[str] = "SELECT debit_id FROM notices WHERE notice_id = ?"
    notice_by_id: ClassVar[str] = "SELECT * FROM notices WHERE notice_id = ?"
    send_outcomes: ClassVar[str] = (  # what applied receipts said of one send
        "SELECT status FROM receipts WHERE notice_id = ? AND channel = ? AND verdict = 'applied'"
    )
    insert_receipt: ClassVar[str] = (
        "INSERT INTO receipts (notice_id, channel, status, occurred_at, ref, verdict, reason,"
        " raw, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    receipts_of: ClassVar[str] = "SELECT * FROM receipts WHERE notice_id = ? ORDER BY seq"
    all_receipts: ClassVar[str] = "SELECT * FROM receipts ORDER BY seq"
    awaiting_receipt: ClassVar[str] = (
        "SELECT * FROM notices WHERE status = 'sent' AND receipt_by <= ?"
        " ORDER BY receipt_by, notice_id"
    )
    next_receipt_by: ClassVar[str] = (
        "SELECT min(receipt_by) FROM notices WHERE status = 'sent' AND receipt_by IS NOT NULL"
    )
    # Each send (notice, channel) once, by the best its applied receipts said.
    deliveries: ClassVar[str] = (
        "SELECT channel, best, count(*) FROM (SELECT notice_id, channel, max(CASE status"
        " WHEN 'delivered' THEN 2 WHEN 'undelivered' THEN 1 ELSE 0 END) AS best"
        " FROM receipts WHERE verdict = 'applied' GROUP BY notice_id, channel) sends"
        " GROUP BY channel, best"
    )

    # The inquiry of stuck debits: a schedule row per debit, for its current attempt only.
    inquiries_due: ClassVar[str] = (  # (state, now, quiet_before, limit)
        "SELECT d.debit_id, d.attempt, coalesce(s.rounds, 0),"
        " coalesce(s.next_at, max(e.occurred_at)) FROM debits d JOIN events e"
        " ON e.debit_id = d.debit_id AND e.accepted = 1 LEFT JOIN inquiry_schedule s"
        " ON s.debit_id = d.debit_id AND s.attempt = d.attempt"
        " WHERE d.state = ? AND (s.next_at IS NULL OR s.next_at <= ?)"
        " GROUP BY d.debit_id, d.attempt, s.rounds, s.next_at"
        " HAVING max(e.occurred_at) < ? ORDER BY 4, 1 LIMIT ?"
    )
    insert_inquiry: ClassVar[str] = (
        "INSERT INTO inquiries (debit_id, attempt, asked_at, answer, verdict, error, next_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    schedule_inquiry: ClassVar[str] = (  # (debit_id, attempt, rounds, next_at)
        "INSERT INTO inquiry_schedule (debit_id, attempt, rounds, next_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (debit_id) DO UPDATE SET attempt = excluded.attempt,"
        " rounds = excluded.rounds, next_at = excluded.next_at"
    )
    inquiry_columns: ClassVar[str] = (
        "SELECT debit_id, asked_at, answer, verdict, error, next_at, attempt FROM inquiries"
    )
    inquiries_of: ClassVar[str] = inquiry_columns + " WHERE debit_id = ? ORDER BY seq"
    all_inquiries: ClassVar[str] = inquiry_columns + " ORDER BY seq"
    last_inquiries: ClassVar[str] = inquiry_columns + (
        " WHERE seq IN (SELECT max(seq) FROM inquiries WHERE debit_id IN ({}) GROUP BY debit_id)"
    )
    inquiry_counts: ClassVar[str] = "SELECT count(*), count(answer), count(error) FROM inquiries"

    # The operator's page: outcomes and deliveries over time, conflicts, notices waiting.
    last_news: ClassVar[str] = (  # each debit's latest accepted event time
        "(SELECT debit_id, max(occurred_at) AS last FROM events WHERE accepted = 1"
        " GROUP BY debit_id)"
    )
    outcome_tally: ClassVar[str] = (  # (width, since, states)
        f"SELECT {_BUCKET.format('e.last')}, d.state, count(*) FROM debits d JOIN {last_news} e"
        " ON e.debit_id = d.debit_id WHERE e.last >= ? AND d.state IN ({}) GROUP BY 1, 2"
        " ORDER BY 1, 2"
    )
    delivery_tally: ClassVar[str] = (  # (width, since)
        f"SELECT channel, {_BUCKET.format('last')}, best, count(*) FROM (SELECT notice_id,"
        " channel, max(CASE status WHEN 'delivered' THEN 2 WHEN 'undelivered' THEN 1 ELSE 0"
        " END) AS best, max(occurred_at) AS last FROM receipts WHERE verdict = 'applied'"
        " GROUP BY notice_id, channel) sends WHERE last >= ? GROUP BY 1, 2, 3"
    )
    conflicts: ClassVar[str] = (
        "SELECT * FROM events WHERE verdict = 'conflict' ORDER BY seq DESC LIMIT ?"
    )
    waiting: ClassVar[str] = (
        "SELECT * FROM notices WHERE status = 'queued' ORDER BY due_at, notice_id LIMIT ?"
    )


Q = TypeVar("Q", bound=type[Queries])


def pyformat(queries: Q) -> Q:
    """The dialect's statements with ``%s`` placeholders in place of ``?`` (psycopg's style)."""
    for name in dir(queries):
        value = getattr(queries, name)
        if not name.startswith("_") and isinstance(value, str):
            setattr(queries, name, value.replace("?", "%s"))
    return queries
