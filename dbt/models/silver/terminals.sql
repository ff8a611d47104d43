-- One row per terminal: the latest export wins.
with staged as (
    select * from {{ ref('stg_bronze__terminals') }}
    where parse_error is null and terminal_id is not null
),

ranked as (
    select
        *,
        row_number() over (
            partition by terminal_id order by source_file desc, line_number desc
        ) as recency
    from staged
)

select
    terminal_id, location_x, location_y, mcc, merchant_category, time_zone, currency,
    source_file, ingested_at
from ranked
where recency = 1
