with source as (
    select * from {{ source('bronze', 'customers') }}
)

select
    try_cast(customer_id as bigint) as customer_id,
    card_id,
    try_cast(home_x as double) as home_x,
    try_cast(home_y as double) as home_y,
    payload as raw_line,
    _parse_error as parse_error,
    _source_file as source_file,
    _line_number as line_number,
    _ingested_at as ingested_at
from source
