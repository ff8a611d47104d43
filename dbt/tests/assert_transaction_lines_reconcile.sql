-- Nothing is dropped silently: every transaction line in bronze is a silver row, a
-- quarantined row or a removed duplicate. Returns a row (a failure) when the counts differ.
with counts as (
    select
        (select count(*) from {{ source('bronze', 'transactions') }}) as landing_lines,
        (select count(*) from {{ ref('transactions') }}) as silver_rows,
        (select count(*) from {{ ref('quarantine') }} where feed = 'transactions') as quarantined,
        (select count(*) from {{ ref('removed_duplicates') }}) as duplicates
)

select *
from counts
where landing_lines <> silver_rows + quarantined + duplicates
