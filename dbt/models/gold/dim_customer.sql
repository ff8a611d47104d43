select
    customer_id,
    card_id,
    home_x,
    home_y
from {{ ref('customers') }}
