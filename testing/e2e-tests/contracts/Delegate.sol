// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.20;

/// The delegate of the end-to-end tests' EIP-7702 authorization: once an account
/// delegates to it, calling the account runs this code in the account's context, so
/// `whoami()` returns the account's own address.
contract Delegate {
    function whoami() external view returns (address) {
        return address(this);
    }
}
