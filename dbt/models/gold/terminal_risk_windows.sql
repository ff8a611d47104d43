-- The handbook's terminal features: number of transactions and risk (share of frauds) over
-- windows of 1, 7 and 30 days that end 7 days before the transaction (the delay period:
-- labels arrive late). Labels are those known now; the fraud model makes them point-in-time.
{% set delay = 7 %}
{% set windows = [1, 7, 30] %}
with windowed as (
    select
        transaction_id,
        terminal_id,
        event_time,
        {% for days in windows %}
        count(*) over (
            partition by terminal_id order by event_time
            range between interval {{ days + delay }} days preceding
                and interval {{ delay }} days preceding
        ) as terminal_transactions_{{ days }}d,
        count(*) filter (where is_fraud) over (
            partition by terminal_id order by event_time
            range between interval {{ days + delay }} days preceding
                and interval {{ delay }} days preceding
        ) as terminal_frauds_{{ days }}d{{ "," if not loop.last }}
        {% endfor %}
    from {{ ref('fct_transactions') }}
)

select
    transaction_id,
    terminal_id,
    event_time,
    {% for days in windows %}
    terminal_transactions_{{ days }}d,
    coalesce(terminal_frauds_{{ days }}d / nullif(terminal_transactions_{{ days }}d, 0), 0)
        as terminal_risk_{{ days }}d{{ "," if not loop.last }}
    {% endfor %}
from windowed
