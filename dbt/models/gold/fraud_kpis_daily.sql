-- Daily fraud KPIs per merchant category, with the fraud labels known so far.
select
    event_date,
    merchant_category,
    count(*) as transactions,
    sum(amount) as amount,
    count(*) filter (where is_fraud) as frauds,
    count(*) filter (where is_fraud) / count(*) as fraud_rate,
    coalesce(sum(amount) filter (where is_fraud), 0) as fraud_amount,
    coalesce(sum(amount) filter (where fraud_pattern = 'high_amount'), 0)
        as fraud_amount_high_amount,
    coalesce(sum(amount) filter (where fraud_pattern = 'compromised_terminal'), 0)
        as fraud_amount_compromised_terminal,
    coalesce(sum(amount) filter (where fraud_pattern = 'compromised_card'), 0)
        as fraud_amount_compromised_card
from {{ ref('fct_transactions') }}
group by event_date, merchant_category
