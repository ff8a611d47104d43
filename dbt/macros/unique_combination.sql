{#- Generic test: the combination of columns is unique (dbt_utils cannot be installed
    offline, so the project carries its own). -#}
{% test dbt_utils_free_unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
