-- One row per customer: the latest export wins.
with staged as (
    select * from {{ ref('stg_bronze__customers') }}
    where parse_error is null and customer_id is not null
),

ranked as (
    select
        *,
        row_number() over (
            partition by customer_id order by source_file desc, line_number desc
        ) as recency
    from staged
)

select customer_id, card_id, home_x, home_y, source_file, ingested_at
from ranked
where recency = 1
