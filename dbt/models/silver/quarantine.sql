-- Every landing line that failed a contract, with the rule and the raw line. Nothing is
-- dropped silently: landing lines = silver rows + quarantined rows + removed duplicates.
with transaction_lines as (
    select * from {{ ref('int_transaction_lines') }}
)

select
    'transactions' as feed,
    checked.source_file,
    checked.line_number,
    checked.failed_rule,
    checked.parse_error,
    checked.transaction_id as record_id,
    transaction_lines.raw_line,
    checked.batch_id,
    checked.ingested_at
from {{ ref('int_transactions_checked') }} as checked
inner join transaction_lines
    on checked.source_file = transaction_lines.source_file
    and checked.line_number = transaction_lines.line_number
where checked.failed_rule is not null

union all

select
    'chargebacks' as feed,
    source_file,
    line_number,
    failed_rule,
    parse_error,
    chargeback_id as record_id,
    raw_line,
    batch_id,
    ingested_at
from {{ ref('int_chargebacks_checked') }}
where failed_rule is not null
