-- Valid lines dropped because an earlier line had the same transaction id.
with valid as (
    select * from {{ ref('int_transactions_checked') }}
    where failed_rule is null
),

ranked as (
    select
        *,
        row_number() over (
            partition by transaction_id order by source_file, line_number
        ) as arrival,
        first_value(source_file) over (
            partition by transaction_id order by source_file, line_number
        ) as kept_source_file,
        first_value(line_number) over (
            partition by transaction_id order by source_file, line_number
        ) as kept_line_number
    from valid
)

select
    transaction_id,
    source_file,
    line_number,
    kept_source_file,
    kept_line_number,
    raw_line,
    ingested_at
from ranked
where arrival > 1
