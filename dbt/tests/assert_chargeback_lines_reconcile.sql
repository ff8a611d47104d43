-- Every chargeback line is a silver chargeback, a quarantined row or a repeated report.
with counts as (
    select
        (select count(*) from {{ source('bronze', 'chargebacks') }}) as landing_lines,
        (select count(*) from {{ ref('chargebacks') }}) as silver_rows,
        (select count(*) from {{ ref('quarantine') }} where feed = 'chargebacks') as quarantined,
        (
            select count(*) - count(distinct chargeback_id)
            from {{ ref('int_chargebacks_checked') }}
            where failed_rule is null
        ) as repeats
)

select *
from counts
where landing_lines <> silver_rows + quarantined + repeats
