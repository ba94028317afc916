//! Building blocks of the Terraform schemas: the provider block, every resource and every data
//! source describe their attributes with these, so an attribute reads the same everywhere
//! (Markdown descriptions, never sensitive or deprecated unless said) and a schema of plain
//! attributes is one call. This module knows nothing about BentoCloud.

use std::collections::{BTreeMap, HashMap};

use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, Schema,
};
use tf_provider::value::Value;

/// A `map(string)` value whose entries may be unknown during plan.
pub type StringMap = BTreeMap<String, Value<String>>;

/// A plain (not sensitive, not deprecated) attribute described in Markdown.
pub fn attr(t: AttributeType, c: AttributeConstraint, d: &str) -> Attribute {
    Attribute {
        attr_type: t,
        description: Description::markdown(d),
        constraint: c,
        sensitive: false,
        deprecated: false,
    }
}

/// The `map(string)` attribute type.
pub fn str_map() -> AttributeType {
    AttributeType::Map(Box::new(AttributeType::String))
}

/// A block's attributes from `(name, attribute)` pairs.
pub fn to_map(items: Vec<(&str, Attribute)>) -> HashMap<String, Attribute> {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A schema of attributes only (no nested blocks), described in Markdown: the provider
/// block's, the data sources' and `bentocloud_secret`'s.
pub fn flat_schema(attributes: HashMap<String, Attribute>, description: &str) -> Schema {
    Schema {
        version: 1,
        block: Block {
            version: 1,
            attributes,
            blocks: HashMap::new(),
            description: Description::markdown(description),
            deprecated: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_schema_holds_the_attributes_and_no_block() {
        let s = flat_schema(
            to_map(vec![(
                "x",
                attr(
                    AttributeType::String,
                    AttributeConstraint::Optional,
                    "the *x*",
                ),
            )]),
            "A thing.",
        );
        assert_eq!(s.block.attributes.len(), 1);
        assert!(s.block.blocks.is_empty());
        let x = &s.block.attributes["x"];
        assert_eq!(x.description.content, "the *x*");
        assert!(!x.sensitive && !x.deprecated);
        assert_eq!(s.block.description.content, "A thing.");
        assert_eq!(
            str_map(),
            AttributeType::Map(Box::new(AttributeType::String))
        );
    }
}
