{#- Layers are schemas named exactly bronze / staging / silver / gold, not <target>_<layer>:
    the published Iceberg namespaces carry the same names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name | trim if custom_schema_name else target.schema }}
{%- endmacro %}
