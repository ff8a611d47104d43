-- Valid transactions, one row per transaction id: the first arrival (earliest delivery
-- file, then line) wins. Late events are kept and placed by their event time.
select
    transaction_id,
    event_time,
    cast(event_time as date) as event_date,
    customer_id,
    card_id,
    terminal_id,
    mcc,
    amount,
    currency,
    channel,
    schema_version,
    source_file,
    line_number,
    batch_id,
    ingested_at
from {{ ref('int_transactions_checked') }} as checked
where failed_rule is null
    and not exists (
        select 1
        from {{ ref('int_transactions_duplicates') }} as duplicates
        where duplicates.arrival > 1
            and duplicates.source_file = checked.source_file
            and duplicates.line_number = checked.line_number
    )
