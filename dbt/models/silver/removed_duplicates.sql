-- Valid lines dropped because an earlier line had the same transaction id.
with later_arrivals as (
    select * from {{ ref('int_transactions_duplicates') }}
    where arrival > 1
),

transaction_lines as (
    select * from {{ ref('int_transaction_lines') }}
)

select
    later_arrivals.transaction_id,
    later_arrivals.source_file,
    later_arrivals.line_number,
    later_arrivals.kept_source_file,
    later_arrivals.kept_line_number,
    transaction_lines.raw_line,
    later_arrivals.ingested_at
from later_arrivals
inner join transaction_lines
    on later_arrivals.source_file = transaction_lines.source_file
    and later_arrivals.line_number = transaction_lines.line_number
