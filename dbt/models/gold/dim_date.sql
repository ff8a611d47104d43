-- One row per calendar day from the first transaction to the last chargeback report.
with bounds as (
    select
        min(event_date) as first_day,
        greatest(max(event_date), max(coalesce(fraud_known_date, event_date))) as last_day
    from {{ ref('fct_transactions') }}
),

days as (
    select {{ days_between('first_day', 'last_day') }}
    from bounds
)

select
    date_day,
    year(date_day) as year,
    month(date_day) as month,
    {{ day_of_month('date_day') }} as day_of_month,
    {{ iso_day_of_week('date_day') }} as day_of_week,
    {{ day_name('date_day') }} as day_name,
    weekofyear(date_day) as iso_week,
    {{ iso_day_of_week('date_day') }} >= 6 as is_weekend
from days
