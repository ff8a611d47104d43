-- Every landing line that failed a contract, with the rule and the raw line. Nothing is
-- dropped silently: landing lines = silver rows + quarantined rows + removed duplicates.
select
    'transactions' as feed,
    source_file,
    line_number,
    failed_rule,
    parse_error,
    transaction_id as record_id,
    raw_line,
    batch_id,
    ingested_at
from {{ ref('int_transactions_checked') }}
where failed_rule is not null

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
