-- A table, and a small one: the lines of every transaction id that arrived more than
-- once, ranked by arrival (earliest delivery file, then line). Rank 1 stays in silver,
-- later ones are removed duplicates. An aggregate over the id finds them, so the window
-- sorts these few lines instead of every line with all its columns.
{{ config(materialized='table') }}
with valid as (
    select transaction_id, source_file, line_number, ingested_at
    from {{ ref('int_transactions_checked') }}
    where failed_rule is null
),

duplicated as (
    select transaction_id
    from valid
    group by transaction_id
    having count(*) > 1
)

select
    transaction_id,
    source_file,
    line_number,
    ingested_at,
    row_number() over arrivals as arrival,
    first_value(source_file) over arrivals as kept_source_file,
    first_value(line_number) over arrivals as kept_line_number
from valid
where transaction_id in (select transaction_id from duplicated)
window arrivals as (partition by transaction_id order by source_file, line_number)
