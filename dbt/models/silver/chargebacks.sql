-- Valid chargebacks, one per chargeback id (the first arrival wins).
with valid as (
    select * from {{ ref('int_chargebacks_checked') }}
    where failed_rule is null
),

ranked as (
    select
        *,
        row_number() over (
            partition by chargeback_id order by source_file, line_number
        ) as arrival
    from valid
)

select
    chargeback_id,
    transaction_id,
    card_id,
    reported_at,
    reason_code,
    fraud_pattern,
    amount,
    currency,
    source_file,
    line_number,
    ingested_at
from ranked
where arrival = 1
