select
    terminal_id,
    location_x,
    location_y,
    mcc,
    merchant_category,
    time_zone,
    currency
from {{ ref('terminals') }}
