-- The handbook's customer features: number of transactions and mean amount over the last
-- 1, 7 and 30 days, the current transaction included (time ranges, not row counts).
{% set windows = [1, 7, 30] %}
select
    transaction_id,
    customer_id,
    event_time,
    {% for days in windows %}
    count(*) over (
        partition by customer_id order by event_time
        range between interval {{ days }} days preceding and current row
    ) as customer_transactions_{{ days }}d,
    avg(amount) over (
        partition by customer_id order by event_time
        range between interval {{ days }} days preceding and current row
    ) as customer_mean_amount_{{ days }}d{{ "," if not loop.last }}
    {% endfor %}
from {{ ref('fct_transactions') }}
