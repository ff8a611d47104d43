-- Every chargeback line with the first contract rule it fails (null when it passes).
with staged as (
    select * from {{ ref('stg_bronze__chargebacks') }}
)

select
    staged.*,
    case
        when staged.parse_error like 'invalid UTF-8%' then 'invalid_encoding'
        when staged.parse_error is not null then 'invalid_json'
        when staged.chargeback_id is null or staged.transaction_id is null
            or staged.reported_at_text is null
            then 'missing_required_field'
        when staged.reported_at is null then 'wrong_type'
    end as failed_rule
from staged
