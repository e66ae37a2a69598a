//! `#[derive(Module)]`: a Rust struct as a typed view of an NNX module.
//!
//! Use it through `nnx_fast` (or `nnx_core`), which re-export it:
//!
//! ```ignore
//! use nnx_fast::prelude::*;
//!
//! #[derive(Module, Clone)]
//! struct Linear {
//!     kernel: Param,          // a Variable: state, shared by reference
//!     bias: Option<Param>,    // `None` is Python's `None`
//!     in_features: usize,     // a plain field: static
//! }
//! ```
//!
//! The derive implements `ToValue`, `FromValue`, `GraphValue` and `TypedModule` for the
//! struct: it converts to an `Object` whose type name is the struct's name and whose
//! attributes are the fields (the same handles, so state changes made through either side are
//! seen by both), and is read back from one (every field checked, errors naming the field).
//! `#[module(name = "Weights")]` sets the type name in the graph (default: the struct's name).
//! See `TypedModule` in `nnx_core` for the semantics.

use proc_macro::TokenStream;
use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, parse_macro_input, parse_quote};

/// Derives a typed module: see the crate documentation.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// The path of the crate that holds the graph types, as the deriving crate names it.
fn krate() -> TokenStream2 {
    for name in ["nnx-core", "nnx-fast", "nnx-reference"] {
        match crate_name(name) {
            // Inside nnx-core itself (`extern crate self as nnx_core`), and its tests.
            Ok(FoundCrate::Itself) => {
                let ident = Ident::new(&name.replace('-', "_"), Span::call_site());
                return quote!(::#ident);
            }
            Ok(FoundCrate::Name(found)) => {
                let ident = Ident::new(&found, Span::call_site());
                return quote!(::#ident);
            }
            Err(_) => {}
        }
    }
    quote!(::nnx_fast)
}

const SHAPE_HELP: &str = "`#[derive(Module)]` needs a struct with named fields, such as \
`struct Linear { kernel: Param, bias: Option<Param>, in_features: usize }`; \
for a module whose attributes change at run time, use `Object` (`Module::new(\"Name\")`)";

/// The graph type name: the struct's name, or `#[module(name = "…")]` (the Python class
/// name a checkpoint or a printed tree expects).
fn type_name(input: &DeriveInput) -> syn::Result<String> {
    let mut name = input.ident.to_string();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let value: syn::LitStr = meta.value()?.parse()?;
                name = value.value();
                Ok(())
            } else {
                Err(meta.error(
                    "unknown `module` attribute; the only one is `#[module(name = \"TypeName\")]`",
                ))
            }
        })?;
    }
    if name.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "`#[module(name = \"\")]`: a module's type name cannot be empty",
        ));
    }
    Ok(name)
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => &named.named,
            Fields::Unnamed(_) | Fields::Unit => {
                return Err(syn::Error::new_spanned(&input.ident, SHAPE_HELP));
            }
        },
        Data::Enum(data) => {
            return Err(syn::Error::new_spanned(data.enum_token, SHAPE_HELP));
        }
        Data::Union(data) => {
            return Err(syn::Error::new_spanned(data.union_token, SHAPE_HELP));
        }
    };
    if let Some(lifetime) = input.generics.lifetimes().next() {
        return Err(syn::Error::new_spanned(
            lifetime,
            "a `#[derive(Module)]` struct cannot borrow: its fields are handles (`Param`, \
             sub-modules, `Vec<Linear>`) or owned static values (`usize`, `String`), so drop \
             the lifetime parameter",
        ));
    }
    let krate = krate();
    let name = &input.ident;
    let type_name = type_name(input)?;

    // Every type parameter (a generic sub-module) converts like a field.
    let mut generics = input.generics.clone();
    let type_params: Vec<Ident> = generics.type_params().map(|p| p.ident.clone()).collect();
    {
        let where_clause = generics.make_where_clause();
        for param in &type_params {
            where_clause.predicates.push(parse_quote!(
                #param: #krate::graph::ToValue + #krate::graph::FromValue
            ));
        }
    }
    let (impl_generics, type_generics, where_clause) = generics.split_for_impl();

    let idents: Vec<&Ident> = fields.iter().filter_map(|f| f.ident.as_ref()).collect();
    let names: Vec<String> = idents.iter().map(|i| i.to_string()).collect();
    let values: Vec<Ident> = idents
        .iter()
        .map(|i| Ident::new(&format!("__value_{i}"), i.span()))
        .collect();
    // Conversions spanned at each field's type, so that a field that is not a graph value is
    // reported there.
    let to_values: Vec<TokenStream2> = fields
        .iter()
        .zip(&idents)
        .map(|(f, i)| quote_spanned!(f.ty.span()=> #krate::graph::ToValue::to_value(&self.#i)))
        .collect();
    let reads: Vec<TokenStream2> = fields
        .iter()
        .zip(&values)
        .zip(&names)
        .map(|((f, v), n)| quote_spanned!(f.ty.span()=> #krate::graph::read_field(&#v, #n)?))
        .collect();

    Ok(quote! {
        impl #impl_generics #krate::graph::TypedModule for #name #type_generics #where_clause {
            const TYPE_NAME: &'static str = #type_name;

            fn to_object(&self) -> #krate::Object {
                #krate::graph::typed_object(
                    #type_name,
                    ::std::vec![#((#names, #to_values)),*],
                )
            }

            fn from_object(object: &#krate::Object) -> #krate::Result<Self> {
                #krate::graph::check_type_name::<Self>(object)?;
                #(let #values = #krate::graph::field_value(object, #names);)*
                let typed = Self {
                    #(#idents: #reads,)*
                };
                #krate::graph::remember_object(
                    object,
                    #type_name,
                    &[#((#names, #values)),*],
                );
                ::std::result::Result::Ok(typed)
            }
        }

        impl #impl_generics #krate::graph::ToValue for #name #type_generics #where_clause {
            fn to_value(&self) -> #krate::Value {
                #krate::Value::Object(#krate::graph::TypedModule::to_object(self))
            }
        }

        impl #impl_generics #krate::graph::FromValue for #name #type_generics #where_clause {
            fn expected() -> ::std::string::String {
                ::std::string::String::from(#type_name)
            }

            fn from_value(value: &#krate::Value) -> #krate::Result<Self> {
                match value {
                    #krate::Value::Object(object) => {
                        <Self as #krate::graph::TypedModule>::from_object(object)
                    }
                    other => ::std::result::Result::Err(#krate::graph::mismatch::<Self>(other)),
                }
            }
        }

        impl #impl_generics #krate::graph::GraphValue for #name #type_generics #where_clause {}
    })
}
