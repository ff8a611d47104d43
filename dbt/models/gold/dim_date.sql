-- One row per calendar day from the first transaction to the last chargeback report.
with bounds as (
    select
        min(event_date) as first_day,
        greatest(max(event_date), max(coalesce(fraud_known_date, event_date))) as last_day
    from {{ ref('fct_transactions') }}
),

days as (
    select cast(unnest(generate_series(first_day, last_day, interval 1 day)) as date) as date_day
    from bounds
)

select
    date_day,
    year(date_day) as year,
    month(date_day) as month,
    day(date_day) as day_of_month,
    isodow(date_day) as day_of_week,
    dayname(date_day) as day_name,
    weekofyear(date_day) as iso_week,
    isodow(date_day) >= 6 as is_weekend
from days
