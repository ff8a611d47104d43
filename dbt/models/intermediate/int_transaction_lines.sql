-- Each transaction landing line as it arrived, by its place in the landing files: the
-- quarantine and the removed duplicates look up the few raw lines they report here.
select
    _source_file as source_file,
    _line_number as line_number,
    payload as raw_line
from {{ source('bronze', 'transactions') }}
