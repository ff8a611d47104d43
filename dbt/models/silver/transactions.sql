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
from {{ ref('int_transactions_arrivals') }}
where arrival = 1
