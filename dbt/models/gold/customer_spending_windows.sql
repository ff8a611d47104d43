-- Generated from lakebed.fraud.features (feature set 906dc37390fa); do not edit.
-- Regenerate with: python -m lakebed.fraud.features
-- Customer spending: the current transaction included (time ranges, not rows).
select
    transaction_id,
    customer_id,
    event_time,
    count(*) over (
        partition by customer_id order by event_time
        range between interval 1 days preceding and current row
    ) as customer_transactions_1d,
    {{ mean('amount') }} over (
        partition by customer_id order by event_time
        range between interval 1 days preceding and current row
    ) as customer_mean_amount_1d,
    count(*) over (
        partition by customer_id order by event_time
        range between interval 7 days preceding and current row
    ) as customer_transactions_7d,
    {{ mean('amount') }} over (
        partition by customer_id order by event_time
        range between interval 7 days preceding and current row
    ) as customer_mean_amount_7d,
    count(*) over (
        partition by customer_id order by event_time
        range between interval 30 days preceding and current row
    ) as customer_transactions_30d,
    {{ mean('amount') }} over (
        partition by customer_id order by event_time
        range between interval 30 days preceding and current row
    ) as customer_mean_amount_30d
from {{ ref('fct_transactions') }}
