{#- Rebuilt dates replace the old ones: delete+insert by date where the engine has it
    (DuckDB); Spark merges by transaction id, the same end state since a rebuilt date
    brings back all of its transactions. -#}
{{
    config(
        materialized='incremental',
        unique_key='event_date' if target.type == 'duckdb' else 'transaction_id',
        incremental_strategy='delete+insert' if target.type == 'duckdb' else 'merge',
    )
}}
-- One row per transaction, with the fraud label as known from chargebacks so far.
-- Incremental by event date: a run rebuilds only the dates touched by newly ingested lines,
-- either transactions (late ones included) or chargebacks that label older transactions.
with transactions as (
    select * from {{ ref('transactions') }}
),

labels as (
    select
        transaction_id,
        min(reported_at) as fraud_reported_at,
        min(fraud_pattern) as fraud_pattern,
        max(ingested_at) as label_ingested_at
    from {{ ref('chargebacks') }}
    group by transaction_id
),

{% if is_incremental() %}
watermark as (
    select coalesce(max(_loaded_at), {{ timestamptz_literal('1970-01-01 00:00:00+00:00') }}) as loaded_at
    from {{ this }}
),

changed_dates as (
    select distinct transactions.event_date
    from transactions
    where transactions.ingested_at > (select loaded_at from watermark)
    union
    select distinct transactions.event_date
    from labels
    inner join transactions on labels.transaction_id = transactions.transaction_id
    where labels.label_ingested_at > (select loaded_at from watermark)
),
{% endif %}

terminals as (
    select terminal_id, merchant_category from {{ ref('terminals') }}
)

select
    transactions.transaction_id,
    transactions.event_time,
    transactions.event_date,
    transactions.customer_id,
    transactions.card_id,
    transactions.terminal_id,
    transactions.mcc,
    terminals.merchant_category,
    transactions.amount,
    transactions.currency,
    transactions.channel,
    labels.transaction_id is not null as is_fraud,
    labels.fraud_pattern,
    labels.fraud_reported_at,
    cast(labels.fraud_reported_at as date) as fraud_known_date,
    transactions.schema_version,
    greatest(
        transactions.ingested_at, coalesce(labels.label_ingested_at, transactions.ingested_at)
    ) as _loaded_at,
    {{ timestamptz_literal(run_started_at.isoformat()) }} as _built_at
from transactions
left join labels on transactions.transaction_id = labels.transaction_id
left join terminals on transactions.terminal_id = terminals.terminal_id
{% if is_incremental() %}
where transactions.event_date in (select event_date from changed_dates)
{% endif %}
