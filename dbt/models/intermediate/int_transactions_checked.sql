-- A table, not a view: the JSON of every line is parsed once here, not once per model
-- that reads the checked lines (silver, quarantine, duplicates). The JSON kinds and the
-- event time's text only serve the rules, so they are not written.
{{ config(materialized='table') }}
-- Every transaction line with the first contract rule it fails (null when it passes), in
-- the order the rules are checked: a line is quarantined for one reason, the first.
with staged as (
    select * from {{ ref('stg_bronze__transactions') }}
),

currencies as (
    select currency_code from {{ ref('iso_currencies') }}
),

customers as (
    select customer_id from {{ ref('customers') }}
),

terminals as (
    select terminal_id from {{ ref('terminals') }}
)

select
    {%- for column in ['transaction_id', 'event_time', 'card_id', 'customer_id', 'terminal_id',
                       'mcc', 'amount', 'currency', 'channel', 'schema_version', 'parse_error',
                       'source_file', 'line_number', 'batch_id', 'ingested_at'] %}
    staged.{{ column }},
    {%- endfor %}
    case
        when staged.parse_error like 'invalid UTF-8%' then 'invalid_encoding'
        when staged.parse_error is not null then 'invalid_json'
        when staged.transaction_id is null
            or staged.event_time_kind is null or staged.event_time_kind = 'null'
            or staged.customer_id_kind is null or staged.customer_id_kind = 'null'
            or staged.terminal_id_kind is null or staged.terminal_id_kind = 'null'
            or staged.amount_kind is null or staged.amount_kind = 'null'
            or staged.currency is null
            then 'missing_required_field'
        when staged.event_time_kind <> 'string' or staged.event_time is null
            or staged.customer_id_kind <> 'integer'
            or staged.terminal_id_kind <> 'integer'
            or staged.amount_kind not in ('integer', 'number')
            then 'wrong_type'
        when staged.amount <= 0 then 'non_positive_amount'
        when staged.currency not in (select currency_code from currencies) then 'unknown_currency'
        when staged.customer_id not in (select customer_id from customers) then 'unknown_customer'
        when staged.terminal_id not in (select terminal_id from terminals) then 'unknown_terminal'
    end as failed_rule
from staged
