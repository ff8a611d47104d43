-- Valid lines dropped because an earlier line had the same transaction id.
select
    transaction_id,
    source_file,
    line_number,
    kept_source_file,
    kept_line_number,
    raw_line,
    ingested_at
from {{ ref('int_transactions_arrivals') }}
where arrival > 1
