//! The register API's fields, parsed at the boundary ("parse, don't
//! validate"): what a valid user name, password, description or device type
//! is, and the text rules every parameter obeys.

mod des;
mod device_type;
mod password;
pub mod text;
mod user_name;

pub use des::Des;
pub use device_type::DeviceType;
pub use password::Password;
pub use text::{RefusedChar, check_text, refused_char};
pub use user_name::{UserName, parse_name_list, parse_string_list};
