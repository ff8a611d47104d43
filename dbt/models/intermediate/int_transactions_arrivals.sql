-- A table: the arrival window runs once for both silver.transactions and the duplicates.
{{ config(materialized='table') }}
-- Valid transaction lines ranked by arrival per transaction id (earliest delivery file,
-- then line): rank 1 is kept in silver, later ones are removed duplicates.
with valid as (
    select * from {{ ref('int_transactions_checked') }}
    where failed_rule is null
)

select
    *,
    row_number() over arrivals as arrival,
    first_value(source_file) over arrivals as kept_source_file,
    first_value(line_number) over arrivals as kept_line_number
from valid
window arrivals as (partition by transaction_id order by source_file, line_number)
