with source as (
    select * from {{ source('bronze', 'terminals') }}
)

select
    try_cast(terminal_id as bigint) as terminal_id,
    try_cast(x as double) as location_x,
    try_cast(y as double) as location_y,
    mcc,
    merchant_category,
    time_zone,
    currency,
    payload as raw_line,
    _parse_error as parse_error,
    _source_file as source_file,
    _line_number as line_number,
    _ingested_at as ingested_at
from source
