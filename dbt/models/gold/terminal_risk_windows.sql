-- Generated from lakebed.fraud.features (feature set 906dc37390fa); do not edit.
-- Regenerate with: python -m lakebed.fraud.features
-- Terminal risk: windows that end a week before the transaction (the handbook's
-- delay for late labels) and recent ones that end 4 days before it (once every
-- late event has arrived), counting only frauds reported before the transaction:
-- point in time.
with scored as (
    select transaction_id, terminal_id, event_time from {{ ref('fct_transactions') }}
),

frauds as (
    select terminal_id, event_time, fraud_reported_at from {{ ref('fct_transactions') }}
    where is_fraud
),

counted as (
    select
        transaction_id,
        count(*) over (
            partition by terminal_id order by event_time
            range between interval 8 days preceding and interval 7 days preceding
        ) as terminal_transactions_1d,
        count(*) over (
            partition by terminal_id order by event_time
            range between interval 14 days preceding and interval 7 days preceding
        ) as terminal_transactions_7d,
        count(*) over (
            partition by terminal_id order by event_time
            range between interval 37 days preceding and interval 7 days preceding
        ) as terminal_transactions_30d,
        count(*) over (
            partition by terminal_id order by event_time
            range between interval 5 days preceding and interval 4 days preceding
        ) as terminal_recent_transactions_1d,
        count(*) over (
            partition by terminal_id order by event_time
            range between interval 11 days preceding and interval 4 days preceding
        ) as terminal_recent_transactions_7d,
        count(*) over (
            partition by terminal_id order by event_time
            range between interval 34 days preceding and interval 4 days preceding
        ) as terminal_recent_transactions_30d
    from {{ ref('fct_transactions') }}
),

known as (
    select
        scored.transaction_id,
        count(*) filter (
            where frauds.event_time >= scored.event_time - interval 8 days
            and frauds.event_time <= scored.event_time - interval 7 days
        ) as frauds_terminal_risk_1d,
        count(*) filter (
            where frauds.event_time >= scored.event_time - interval 14 days
            and frauds.event_time <= scored.event_time - interval 7 days
        ) as frauds_terminal_risk_7d,
        count(*) filter (
            where frauds.event_time >= scored.event_time - interval 37 days
            and frauds.event_time <= scored.event_time - interval 7 days
        ) as frauds_terminal_risk_30d,
        count(*) filter (
            where frauds.event_time >= scored.event_time - interval 5 days
            and frauds.event_time <= scored.event_time - interval 4 days
        ) as frauds_terminal_recent_risk_1d,
        count(*) filter (
            where frauds.event_time >= scored.event_time - interval 11 days
            and frauds.event_time <= scored.event_time - interval 4 days
        ) as frauds_terminal_recent_risk_7d,
        count(*) filter (
            where frauds.event_time >= scored.event_time - interval 34 days
            and frauds.event_time <= scored.event_time - interval 4 days
        ) as frauds_terminal_recent_risk_30d
    from scored
    inner join frauds
        on frauds.terminal_id = scored.terminal_id
        and frauds.event_time >= scored.event_time - interval 37 days
        and frauds.event_time <= scored.event_time - interval 4 days
        and frauds.fraud_reported_at < scored.event_time
    group by scored.transaction_id
)

select
    scored.transaction_id,
    scored.terminal_id,
    scored.event_time,
    counted.terminal_transactions_1d,
    counted.terminal_transactions_7d,
    counted.terminal_transactions_30d,
    counted.terminal_recent_transactions_1d,
    counted.terminal_recent_transactions_7d,
    counted.terminal_recent_transactions_30d,
    coalesce(
        coalesce(known.frauds_terminal_risk_1d, 0) / nullif(counted.terminal_transactions_1d, 0),
        0
    ) as terminal_risk_1d,
    coalesce(
        coalesce(known.frauds_terminal_risk_7d, 0) / nullif(counted.terminal_transactions_7d, 0),
        0
    ) as terminal_risk_7d,
    coalesce(
        coalesce(known.frauds_terminal_risk_30d, 0) / nullif(counted.terminal_transactions_30d, 0),
        0
    ) as terminal_risk_30d,
    coalesce(
        coalesce(known.frauds_terminal_recent_risk_1d, 0) / nullif(counted.terminal_recent_transactions_1d, 0),
        0
    ) as terminal_recent_risk_1d,
    coalesce(
        coalesce(known.frauds_terminal_recent_risk_7d, 0) / nullif(counted.terminal_recent_transactions_7d, 0),
        0
    ) as terminal_recent_risk_7d,
    coalesce(
        coalesce(known.frauds_terminal_recent_risk_30d, 0) / nullif(counted.terminal_recent_transactions_30d, 0),
        0
    ) as terminal_recent_risk_30d
from scored
inner join counted on counted.transaction_id = scored.transaction_id
left join known on known.transaction_id = scored.transaction_id
